#!/bin/bash
# The service graph's cost on the in-process ingest core, interleaved in one run:
# per round, graph off (this tree), graph on (BEFORE tree), graph on (this tree).
# Usage: infra/graph-cost/ab.sh BEFORE_TREE [ROUNDS]   (BEFORE_TREE: e.g. `git archive`
# of the older commit, with its built extension copied in); report the best of each column.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
before=$1
py=${PYTHON:-$here/.venv/bin/python}
for r in $(seq 1 "${2:-5}"); do
  off=$(cd "$here" && PYTHONPATH=$here $py infra/graph-cost/core_one.py off)
  on_before=$(cd "$before" && PYTHONPATH=$before $py "$here/infra/graph-cost/core_one.py" on)
  on_after=$(cd "$here" && PYTHONPATH=$here $py infra/graph-cost/core_one.py on)
  echo "round $r off=$off on_before=$on_before on_after=$on_after load=$(cut -d' ' -f1-3 /proc/loadavg)"
done
