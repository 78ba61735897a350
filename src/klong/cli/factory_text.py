"""Factory stages (text). Commands are registered on `factory_app`."""

from __future__ import annotations
