"""Integration layer: connector manifests, signing, catalog import, secrets, the token broker and the runtime."""
