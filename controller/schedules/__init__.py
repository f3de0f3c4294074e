"""Schedules: the ward's recurring slots — CRUD, the agenda, and the airer the scheduler fires."""
