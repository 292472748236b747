"""One package per technology; each translates its library's errors into the project's."""
