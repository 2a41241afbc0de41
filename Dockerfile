# The spanstream worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY schemas ./schemas
COPY topics ./topics
# Editable: schemas/ and topics/ are read from the source tree next to the package.
RUN pip install --no-cache-dir -e .
EXPOSE 9464 6066
CMD ["spanstream", "worker"]
