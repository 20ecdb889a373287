"""Registry: model versions (the one function that creates them, registration of an evaluated run,
the preparation job: input schema and drift reference), the promotion gate, model files."""
