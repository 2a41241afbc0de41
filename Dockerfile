# The spanstream worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
# pip install builds the native span scanner (pipeline/otlp/_heads.c): it needs a C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md constraints.txt ./
COPY pipeline ./pipeline
COPY schemas ./schemas
COPY topics ./topics
# Editable: schemas/ and topics/ are read from the source tree next to the package.
RUN pip install --no-cache-dir -c constraints.txt -e .
EXPOSE 9464 6066
CMD ["spanstream", "worker"]
