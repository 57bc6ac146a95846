from controltower.cli import main

main()
