"""Deployment artifacts generated from the fleet's manifests: the secrets folder, a Compose file, Kubernetes YAML.

Every generator is a pure function of the fleet and its options (equal inputs give byte-identical files), and each
artifact names only what the one image (``deploy/Dockerfile``) runs: ``oshal migrate``, ``oshal serve`` and one
``oshal node --bot NAME`` per bot.
"""
