"""Factory stages (rubric). Commands are registered on `factory_app`."""

from __future__ import annotations
