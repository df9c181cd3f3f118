"""Lightning modules and callbacks shared by the recipes."""
