"""Experiment trackers (W&B or none) behind one small interface."""

from prunesweep.tracking.trackers import NullTracker, Tracker, WandbTracker, make_tracker

__all__ = ["NullTracker", "Tracker", "WandbTracker", "make_tracker"]
