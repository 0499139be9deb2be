package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/provtrail/provtrail/provenance"
)

// maxLabelItems matches the most items provd puts on one sheet.
const maxLabelItems = 100

func labelsVerb() verb {
	return verb{
		name: "labels", args: "--server URL [--out FILE] [--item DL ...]",
		summary: "save the printable A4 label sheet of items (provd's /labels)",
		help: `
Labels saves the printable A4 sheet of QR labels of the items named by
--item, or else by the Digital Links read from stdin one per line (what
"prov register --count N" prints), as provd renders it at /labels: an HTML
page with print CSS, QR codes with their quiet zone and the GTIN and serial
under each. Open it in a browser and print it. Without --out it prints the
sheet's URL instead. At most 100 items a sheet.

Example:

  $ prov register --server https://id.example.com --key acme.key --gtin 9506000134352 --product "Classic tote" --count 20 \
      | prov labels --server https://id.example.com --out labels.html
  wrote the label sheet of 20 items to labels.html`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			server := fs.String("server", os.Getenv("PROV_SERVER"), "the `URL` of the provd that renders the sheet (PROV_SERVER)")
			out := fs.String("out", "", "write the sheet to this `file` (default: print its URL)")
			var items []string
			fs.Func("item", "an item's Digital Link or `01/GTIN/21/SERIAL` (repeatable; default: read from stdin)", func(s string) error {
				items = append(items, s)
				return nil
			})
			return func(ctx context.Context) error {
				if err := required(fs, "server"); err != nil {
					return err
				}
				if len(items) == 0 {
					sc := bufio.NewScanner(c.stdin)
					for sc.Scan() {
						if line := strings.TrimSpace(sc.Text()); line != "" {
							items = append(items, line)
						}
					}
					if err := sc.Err(); err != nil {
						return err
					}
				}
				if len(items) == 0 {
					return usagef("no items: give --item, or Digital Links on stdin")
				}
				if len(items) > maxLabelItems {
					return fmt.Errorf("%d items: a sheet holds at most %d; split them", len(items), maxLabelItems)
				}
				q := url.Values{}
				for _, s := range items {
					parse := provenance.ParseDigitalLink
					if strings.HasPrefix(s, "01/") {
						parse = provenance.ParseItemID
					}
					id, err := parse(s)
					if err != nil {
						return fmt.Errorf("item %q: %w", s, err)
					}
					q.Add("item", id.DigitalLink(""))
				}
				sheet := strings.TrimSuffix(*server, "/") + "/labels?" + q.Encode()
				if *out == "" {
					fmt.Fprintln(c.stdout, sheet)
					return nil
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, sheet, nil)
				if err != nil {
					return err
				}
				resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
				if err != nil {
					return err
				}
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("%s answered %s for the label sheet", *server, resp.Status)
				}
				if err := os.WriteFile(*out, body, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(c.stderr, "wrote the label sheet of %d items to %s\n", len(items), *out)
				return nil
			}
		},
	}
}
