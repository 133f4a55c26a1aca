"""The demo world of DESIGN.md's story: `manage.py build_demo` builds it with ``world.build``.

story.py holds the cast and the facts, workspace.py the team's git repository and data files,
tracking.py what training leaves in MLflow, people.py the logins, clock.py the moments each step
happens at, world.py the steps themselves.
"""
