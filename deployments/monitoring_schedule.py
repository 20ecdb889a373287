def schedule_due_snapshots() -> int:
    """Queue snapshot jobs for deployments whose interval has passed; returns how many."""
    return 0
