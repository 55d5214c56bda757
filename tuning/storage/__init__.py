"""Optuna storages: opening and checking them (SQLite, journal, RDB URLs), the record of the
recipe a study was made from, and the one adapter over Optuna's private API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lit_optim.catalog import lazy_exports

# what the other packages use: public name -> the module that defines it, imported on
# first use (PEP 562)
_EXPORTS = {
    "HEARTBEAT_S": "tuning.storage.backends",
    "StorageFault": "tuning.storage.backends",
    "StudySnapshot": "tuning.storage.optuna_private",
    "check_same_record": "tuning.storage.record",
    "check_writable": "tuning.storage.backends",
    "content_sha256": "tuning.storage.record",
    "default_storage_url": "tuning.storage.backends",
    "heartbeat": "tuning.storage.optuna_private",
    "open_readonly": "tuning.storage.backends",
    "open_storage": "tuning.storage.backends",
    "recipe_of": "tuning.storage.record",
    "record_of": "tuning.storage.record",
    "report_all": "tuning.storage.optuna_private",
    "set_user_attrs": "tuning.storage.optuna_private",
    "settle_sqlite": "tuning.storage.backends",
    "storage_fault": "tuning.storage.backends",
}

if TYPE_CHECKING:  # `name as name`: a re-export (editors and type checkers resolve it)
    from tuning.storage.backends import HEARTBEAT_S as HEARTBEAT_S
    from tuning.storage.backends import StorageFault as StorageFault
    from tuning.storage.backends import check_writable as check_writable
    from tuning.storage.backends import default_storage_url as default_storage_url
    from tuning.storage.backends import open_readonly as open_readonly
    from tuning.storage.backends import open_storage as open_storage
    from tuning.storage.backends import settle_sqlite as settle_sqlite
    from tuning.storage.backends import storage_fault as storage_fault
    from tuning.storage.optuna_private import StudySnapshot as StudySnapshot
    from tuning.storage.optuna_private import heartbeat as heartbeat
    from tuning.storage.optuna_private import report_all as report_all
    from tuning.storage.optuna_private import set_user_attrs as set_user_attrs
    from tuning.storage.record import check_same_record as check_same_record
    from tuning.storage.record import content_sha256 as content_sha256
    from tuning.storage.record import recipe_of as recipe_of
    from tuning.storage.record import record_of as record_of

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
