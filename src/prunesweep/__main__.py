from prunesweep.cli import main

main()
