package publish_test

import (
	"context"
	"log"
	"time"

	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/publish"
)

// A storefront publishes a visit, a cart and an order. It needs a broker with
// the topics shop.clickstream and shop.orders, so it is compiled but not run.
func Example() {
	p, err := publish.New([]string{"127.0.0.1:19092"})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	view := publish.PageView("", "a-7")
	view.Channel = "web"
	login := publish.Identify("c-1", "a-7")
	add := publish.CartAdd("c-1", "sku-1", "shoes", 59.9, 2)
	if err := p.Publish(ctx, view, login, add); err != nil {
		log.Fatal(err) // names the topic and event id of each failed event
	}

	order := publish.Order("c-1", "o-1001", []event.Item{{SKU: "sku-1", Category: "shoes", Price: 59.9, Quantity: 2}})
	order.Currency = "EUR"
	if err := p.Publish(ctx, order); err != nil {
		log.Fatal(err)
	}
}
