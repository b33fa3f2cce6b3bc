from prunesweep.cli.main import main

main()
