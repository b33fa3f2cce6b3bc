"""The run's settings: typed schemas, config locations and resolvers, command-line checks."""
