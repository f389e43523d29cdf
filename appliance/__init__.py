"""On-premises e-signature appliance. Importing this package has no side effects."""

__version__ = "0.1.0"
