"""The monitoring part: its args (`args`); what Prometheus scrapes and the labels of every series (`scraping`); the
recording rules and alerts (`rules`) and the Grafana dashboards (`dashboards`) made from the stack's models; and the
component that installs kube-prometheus-stack with them (`component`)."""
