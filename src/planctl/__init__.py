"""planctl — data-management toolkit for a training planner's database."""

__version__ = "0.1.0"
