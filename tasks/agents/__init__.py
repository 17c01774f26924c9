"""Agents that ship with bqhold: the services and models its example pipelines call."""
