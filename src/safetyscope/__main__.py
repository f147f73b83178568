from safetyscope.cli import main

main()
