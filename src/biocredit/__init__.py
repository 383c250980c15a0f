"""biocredit: training without weight transport."""
