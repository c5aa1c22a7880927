"""The streaming memory benchmark: streams, tasks, memorizers under test, metrics, reports."""
