package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/webhook"
)

func webhooksVerb() verb {
	return verb{
		name: "webhooks", args: "[--data DIR]",
		summary: "print provd's webhook delivery log (operator)", needData: true,
		help: `
Webhooks prints the delivery log of provd's escrow webhooks (provd
--webhook URL): for each delivery or dispute announced to each URL, its
state (pending, delivered, or failed after every attempt) and every
attempt with its time and HTTP status. It reads the data directory, so
provd must be stopped; while provd runs, its log has a "webhook attempt"
line for each attempt.

Example:

  $ prov webhooks
  DELIVERY  EVENT      ITEM                                  STATE      ATTEMPTS  LAST
  31/0      delivered  01/09506000134352/21/DEMO-DELIVERED   delivered  3         2026-11-22T04:12:26Z 204
  ...`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			return func(ctx context.Context) error {
				if c.server != "" {
					return usagef("webhooks reads the data directory, not a server: provd logs each attempt while it runs")
				}
				b, err := openLocal(ctx, c.dataDir, false, "")
				if err != nil {
					return err
				}
				defer b.Close()
				ds, err := webhook.ReadLog(b.node.DB)
				if err != nil {
					return err
				}
				if len(ds) == 0 {
					fmt.Fprintln(c.stderr, "no webhook deliveries recorded (provd --webhook URL announces deliveries and disputes)")
					return nil
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "DELIVERY\tEVENT\tITEM\tURL\tSTATE\tATTEMPTS\tLAST")
				for _, d := range ds {
					last := "-"
					if n := len(d.Attempts); n > 0 {
						a := d.Attempts[n-1]
						last = a.Time.UTC().Format(time.RFC3339)
						if a.Status != 0 {
							last += fmt.Sprintf(" %d", a.Status)
						}
						if a.Error != "" && (a.Status < 200 || a.Status > 299) {
							last += " " + oneLine(a.Error)
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Event, d.Item, d.URL, d.State, len(d.Attempts), last)
				}
				return tw.Flush()
			}
		},
	}
}
