# The mailsync DynamoDB table (the gate and mirror of DESIGN.md section 5) with TTL on `ttl`, and the
# least-privilege policy for the workers (the same as iam-policy.json). The table layout is the
# earlier Lambda version's: an existing table carries over (import it instead of creating it:
#   terraform import aws_dynamodb_table.mailsync mailsync).

variable "table_name" {
  type    = string
  default = "mailsync"
}

# The Secrets Manager secrets mailsync reads (AWS_SECRETS_MANAGER_SECRET_IDS, aws-sm:ID#KEY) and
# writes rotated refresh tokens into. Empty: no Secrets Manager statement.
variable "secret_arns" {
  type    = list(string)
  default = []
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

  # Read; and write a rotated token back as a compare and swap (PutSecretValue of a version
  # labelled MAILSYNC_PENDING, then UpdateSecretVersionStage moving AWSCURRENT from the version
  # read). A secret encrypted with a customer managed KMS key also needs kms:Decrypt and
  # kms:GenerateDataKey on that key; the default aws/secretsmanager key needs nothing.
  dynamic "statement" {
    for_each = length(var.secret_arns) > 0 ? [1] : []
    content {
      sid = "MailsyncSecrets"
      actions = [
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
      ]
      resources = var.secret_arns
    }
  }
}

resource "aws_iam_policy" "mailsync_worker" {
  name        = "mailsync-worker"
  description = "mailsync workers: the DynamoDB gate and mirror table, and their Secrets Manager secrets"
  policy      = data.aws_iam_policy_document.mailsync_worker.json
}

output "table_arn" {
  value = aws_dynamodb_table.mailsync.arn
}

output "worker_policy_arn" {
  value = aws_iam_policy.mailsync_worker.arn
}
