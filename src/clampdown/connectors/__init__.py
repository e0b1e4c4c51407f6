"""Provider connectors: one package per provider, each implementing `base.Connector`."""
