"""Exploratory profile of a table: per column facts, table-level checks, ranked warnings.

Pure pandas / numpy / scikit-learn, no Django. `profile_frame` is the entry point; the modules
are `columns` (facts of one column), `values` and `plausibility` (values worth a warning),
`target` (problems of the target), `leaks` / `leak_warnings` (single-feature leak measures and
what the profile says about them) and `warnings` (kinds and ranking).
"""

from .profile import SAMPLE_ROWS, correlations, profile_frame
from .warnings import KINDS

__all__ = ["KINDS", "SAMPLE_ROWS", "correlations", "profile_frame"]
