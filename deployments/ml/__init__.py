"""The deployments app's core without Django (like experiments.ml): input schemas and their
validators, scoring, the compiled scoring path, drift statistics and the drift reference.

Every room of the app may use these; they take arrays and frames and return plain values, so
they can be tested and benchmarked without a database.
"""
