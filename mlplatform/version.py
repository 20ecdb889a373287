"""The REST API's version: the schema's `info.version`, `GET /api/v1/version/`, and the Python
client's `mlplatform_client.__version__` (a test keeps the three equal).

Minor versions add to the API; a major version would change `/api/v1/` itself.
1.1.0: 202 + Location for every action that starts a job, `?wait=` and job events, strict
query parameters, dataset rows with ids, split filter and cursor, Parquet export.
1.2.0: external runs (`POST /experiments/{id}/runs/external/`, a skops model evaluated by the
platform), LightGBM in the catalogue, feedback says when it replaced a label.
"""

API_VERSION = "1.2.0"
