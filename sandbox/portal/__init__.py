"""Portal emulator: the provincial portal API on a local socket, seeded with sample dossiers."""

from sandbox.portal.server import Fault, PortalEmulator

__all__ = ["Fault", "PortalEmulator"]
