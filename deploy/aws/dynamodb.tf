# The mailsync DynamoDB table (the gate and mirror of DESIGN.md section 5) with TTL on `ttl`, and the
# least-privilege policy for the workers (the same as iam-policy.json). The table layout is the
# earlier Lambda version's: an existing table carries over (import it instead of creating it:
#   terraform import aws_dynamodb_table.mailsync mailsync).

variable "table_name" {
  type    = string
  default = "mailsync"
}

resource "aws_dynamodb_table" "mailsync" {
  name         = var.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "PK"
  range_key    = "SK"

  attribute {
    name = "PK"
    type = "S"
  }

  attribute {
    name = "SK"
    type = "S"
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = true
}

data "aws_iam_policy_document" "mailsync_worker" {
  statement {
    sid = "MailsyncGateAndMirror"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
      "dynamodb:BatchWriteItem",
    ]
    resources = [aws_dynamodb_table.mailsync.arn]
  }
}

resource "aws_iam_policy" "mailsync_worker" {
  name        = "mailsync-worker"
  description = "mailsync workers: the DynamoDB gate and mirror table, nothing else"
  policy      = data.aws_iam_policy_document.mailsync_worker.json
}

output "table_arn" {
  value = aws_dynamodb_table.mailsync.arn
}

output "worker_policy_arn" {
  value = aws_iam_policy.mailsync_worker.arn
}
