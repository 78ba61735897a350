"""Factory stages (sources). Commands are registered on `factory_app`."""

from __future__ import annotations
