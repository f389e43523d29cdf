"""Reference client of the on-prem e-signature appliance."""

from esign_client.client import Client, ClientError
from esign_client.discovery import Discovery, DiscoveryError, discover

__all__ = ["Client", "ClientError", "Discovery", "DiscoveryError", "discover"]
