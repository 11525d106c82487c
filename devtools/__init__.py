"""Local stand-ins for the services this project talks to.

Shared by the ``make`` targets and the test suite so both exercise the same
OpenBao dev server and Nomad-like identity issuer.  Never imported by
``nomad_vault_setup/``: the Pulumi program must not depend on test scaffolding.
"""
