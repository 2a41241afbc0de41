"""Build the native span scanner (pipeline/otlp/_heads.c) at ``pip install [-e] .``.

Everything else is declared in pyproject.toml; setuptools has no declarative
form for C extensions, hence this file. A failed compile fails the install;
``pipeline.native`` holds the Python definition of every native function.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pipeline.otlp._heads",
            sources=["pipeline/otlp/_heads.c"],
            depends=[
                f"pipeline/otlp/{name}.h"
                for name in (
                    "_wire",
                    "_values",
                    "_span",
                    "_derive",
                    "_head_type",
                    "_window",
                    "_sampling",
                    "_spanmetrics",
                    "_latency",
                    "_policies",
                    "_columns",
                    "_buffers",
                    "_arrow",
                    "_validate",
                    "_graph",
                )
            ],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
        )
    ]
)
