"""``python -m lit_optim.cli`` runs the ``lit-optim`` command."""

from lit_optim.cli.main import main

main()
