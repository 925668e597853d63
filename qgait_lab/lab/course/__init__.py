"""The course as a course: notebook budgets, executing notebooks with a watchdog, the student release
and autograding (``qgait-lab lab release`` / ``qgait-lab lab grade``)."""
