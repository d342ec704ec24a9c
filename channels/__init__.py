"""Channel adapters: one module per service, all behind the contract in base.py."""
