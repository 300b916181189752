from tooltune.cli import main

main()
