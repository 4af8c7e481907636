//! An in-memory engine for planner and executor tests.
