package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
)

// forwarderOpts configure the minimal forwarder (-forwarder mode).
type forwarderOpts struct {
	mqttURL, natsURL, topic, subject string
	recvMax                          int
}

// runForwarder is the reference the bridge is measured against: subscribe QoS 1, check
// that the payload is JSON (json.Valid), publish it unchanged to one NATS subject with a
// core publish, let paho acknowledge when the handler returns (auto-ack). No decoding, no
// routing, no logging, no flush: the least work a bridge between these two brokers can
// do, so its throughput is what this machine can carry.
func runForwarder(o forwarderOpts) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	nc, err := nats.Connect(o.natsURL, nats.Name("zb-load-forwarder"))
	if err != nil {
		return err
	}
	defer nc.Close()
	u, err := url.Parse(o.mqttURL)
	if err != nil {
		return err
	}
	ready := make(chan error, 1)
	rm := uint16(o.recvMax)
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			c.Properties.ReceiveMaximum = &rm
			return c, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() { // Subscribe waits for the SUBACK; OnConnectionUp must not block
				_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: o.topic, QoS: 1}}})
				select {
				case ready <- err:
				default:
				}
			}()
		},
		ClientConfig: paho.ClientConfig{
			ClientID: "zb-load-forwarder",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					if !json.Valid(pr.Packet.Payload) {
						return true, nil // acknowledged and dropped, as a bridge drops garbage
					}
					return true, nc.Publish(o.subject, pr.Packet.Payload)
				},
			},
		},
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return err
	}
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	case <-time.After(20 * time.Second):
		return fmt.Errorf("no SUBACK within 20s")
	case <-ctx.Done():
		return nil
	}
	fmt.Println("forwarder ready")
	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = nc.Flush()
	return cm.Disconnect(dctx)
}
