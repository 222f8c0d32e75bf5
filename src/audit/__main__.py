from audit.entrypoints.cli import main

main()
