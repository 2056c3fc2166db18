"""`python -m reversenet`, as torchrun launches it: torchrun --nproc_per_node 2 -m reversenet run CONFIG"""

from .cli import main

main()
