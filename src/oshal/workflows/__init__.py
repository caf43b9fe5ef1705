"""Workflows: the ticket state machine, declarative definitions, the engine, the generator and schedules."""
