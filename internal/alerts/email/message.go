package email

import (
	"fmt"
	"strings"
	"time"

	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/models"
)

// Letter is an e-mail's subject and plain-text body.
type Letter struct {
	Subject, Body string
}

// AlertLetter writes the e-mail for an alert about customer, for a person who
// has to act on it: what happened, the figures, what it means, and see,
// where to look.
func AlertLetter(a *models.Alert, customer string, see string) Letter {
	who := fmt.Sprintf("%s (customer %d)", customer, a.CustomerID)
	headline, meaning := explain(a, who)
	var b strings.Builder
	b.WriteString(headline + "\n\n")
	fmt.Fprintf(&b, "  Credit:     %s\n  Used:       %s (%.2f %%)\n  Available:  %s\n", a.Credit, a.Used, a.UsagePercent(), a.Available)
	if a.Status != nil {
		fmt.Fprintf(&b, "  Status:     %s\n", *a.Status)
	}
	if a.Kind == rules.DepletionForecast && a.DaysLeft != nil {
		fmt.Fprintf(&b, "  Burn rate:  %s a day (over the last %d hours)\n", deref(a.BurnRatePerDay), derefInt(a.BasedOnHours))
		if a.DepletesAt != nil {
			fmt.Fprintf(&b, "  Runs out:   %s (in %.2f days)\n", a.DepletesAt.UTC().Format("2006-01-02 15:04 MST"), float64(*a.DaysLeft)/100)
		}
	}
	b.WriteString("\n" + meaning + "\n\n")
	if see != "" {
		b.WriteString(see + "\n\n")
	}
	fmt.Fprintf(&b, "Alert %d (%s, caused by %s), raised %s.\n", a.ID, a.Kind, a.Cause, a.CreatedAt.UTC().Format(time.RFC1123))
	return Letter{Subject: headline, Body: b.String()}
}

// explain is an alert's headline and what it means for the partner.
func explain(a *models.Alert, who string) (string, string) {
	switch a.Kind {
	case rules.AvailableBelow:
		return fmt.Sprintf("%s: available credit fell below %s", who, deref(a.Level)),
			"Allocate credit (setCredit) before it runs out, or agree a limit with the customer."
	case rules.StatusChanged:
		prev := "?"
		if a.PreviousStatus != nil {
			prev = string(*a.PreviousStatus)
		}
		return fmt.Sprintf("%s is now %s (was %s)", who, status(a), prev), statusMeaning(a)
	case rules.Recovered:
		level := fmt.Sprintf("%d %% of credit used", a.Threshold)
		if a.RecoveredKind != nil && *a.RecoveredKind == rules.AvailableBelow {
			level = "available credit below " + deref(a.Level)
		}
		return fmt.Sprintf("%s recovered: no longer %s", who, level),
			"No action is needed: new credit or a correction brought the customer back under this level."
	case rules.DepletionForecast:
		days := "soon"
		if a.DaysLeft != nil {
			days = fmt.Sprintf("in %.1f days", float64(*a.DaysLeft)/100)
		}
		return fmt.Sprintf("%s will run out of credit %s at its current usage", who, days),
			"Allocate credit before then, or talk to the customer about its usage."
	}
	meaning := "Watch its usage; allocate credit if it keeps growing."
	if a.Threshold >= 100 {
		meaning = "The customer has no credit left: without the non-stop privilege it is suspended. Allocate credit to restore it."
	} else if a.Threshold >= 90 {
		meaning = "The customer is close to its limit: allocate credit now to avoid a suspension."
	}
	return fmt.Sprintf("%s has used %d %% of its credit", who, a.Threshold), meaning
}

func statusMeaning(a *models.Alert) string {
	switch status(a) {
	case string(credit.StatusSuspended):
		return "The customer's services are suspended until it has available credit again: allocate credit to restore them."
	case string(credit.StatusPurchasesBlocked):
		return "The customer cannot make new purchases until it has available credit again."
	}
	return "The customer is active again: no action is needed."
}

func status(a *models.Alert) string {
	if a.Status == nil {
		return "?"
	}
	return string(*a.Status)
}

// NoticeLetter writes the e-mail for a notice to a partner.
func NoticeLetter(n *delivery.Notice) Letter {
	subject := "Notice for your partner account"
	if n.Kind == delivery.NoticeEndpointDisabled {
		subject = "A webhook endpoint was disabled"
	}
	body := fmt.Sprintf("%s\n\nNotice %d (%s), %s.\n", n.Message, n.ID, n.Kind, n.CreatedAt.UTC().Format(time.RFC1123))
	return Letter{Subject: subject, Body: body}
}

func deref[T fmt.Stringer](v *T) string {
	if v == nil {
		return "?"
	}
	return (*v).String()
}

func derefInt(v *int) int {
	if v == nil {
		return 0
	}
	return *v
}
