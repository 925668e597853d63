"""The course tier: the notebooks' theory, figures, widgets, graded exercises and the lecturer's tools."""
