// Placeholder: filled by the wallet_flows work of issue 4.
