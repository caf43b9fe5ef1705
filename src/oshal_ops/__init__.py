"""The operations loop: Monitor → Gather → Diagnose → Heal → Report, as an application on the platform.

It reaches the platform only through its public REST API (:mod:`oshal_ops.api`), as an operator key; its work is
tickets, its workers are bots on their own lanes, its evidence and reports are artifacts and knowledge documents.
The platform never imports it (import-linter enforces both directions); ``oshal ops ...`` is added to the CLI by
the ``oshal.commands`` entry point.
"""
