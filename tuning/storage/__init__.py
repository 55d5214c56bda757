"""Optuna storages: opening and checking them (SQLite, journal, RDB URLs), the record of the
recipe a study was made from, and the one adapter over Optuna's private API."""
