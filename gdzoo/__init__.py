"""gdzoo: CNNs pruned with Gate Decorator, the pruning engine, and Hub publishing."""
from .flops import count_flops
from .models import create_model, default_widths, list_archs

__version__ = "0.1.0"

__all__ = ["count_flops", "create_model", "default_widths", "list_archs", "__version__"]
