"""``python -m distinv.solvers --nprocs N --set key=value ...``: run one reconstruction, print its JSON summary."""

from distinv.solvers.run import main

if __name__ == "__main__":
    main()
