"""Storage backends behind one interface (see ``base.Storage``)."""
