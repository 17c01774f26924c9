"""Open the warehouse a URL names."""

from __future__ import annotations

from tasks.core.errors import ConfigError
from tasks.core.warehouse_url import WarehouseTarget
from tasks.warehouses.base import Warehouse


def open_warehouse(target: WarehouseTarget) -> Warehouse:
    """A connected warehouse for `target`."""
    if target.kind == "duckdb":
        from tasks.warehouses.duckdb_warehouse import DuckDbWarehouse

        return DuckDbWarehouse(target.path)
    raise ConfigError(f"warehouse {target.display()} is not supported yet")
